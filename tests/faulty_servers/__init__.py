"""Deliberately faulty reference-protocol servers for the oracle tests (see server.py)."""
