"""Live rules (DG5xx): they read the live window, not the config alone; `live = True` keeps them out of static runs."""
