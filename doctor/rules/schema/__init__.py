"""Rules of this bundle, one per module."""
