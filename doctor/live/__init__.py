"""The live doctor's data layer: scrape Prometheus text, read utilisation per worker, keep a sliding window of
immutable snapshots. Nothing here draws anything: the command line and the dashboard read snapshots."""
