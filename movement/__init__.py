"""Proof of movement: which vehicles really drove, from signed GPS, odometer and speed that must
tell one story (a pure core, its SQL driver and its CLI); trip segmentation will live here too."""
