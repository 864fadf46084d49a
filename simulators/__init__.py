"""Simulated vehicles and fleets that publish signed telemetry like real cars."""
