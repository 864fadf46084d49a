-- A reading refused on its own (docs/protocol.md, "Rejections"): the event is stored with its
-- other readings, and the quarantine keeps the refused reading with the event's id and where
-- the reading stood in data.signals. NULL: the whole event was refused (the payload is the
-- message as received); otherwise the payload is the reading as it came, in JSON.
ALTER TABLE quarantine ADD COLUMN reading integer;
