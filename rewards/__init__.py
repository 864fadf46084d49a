"""Unions, licences, epochs, the ledger and payouts."""
