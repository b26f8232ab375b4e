"""The `disagg top` dashboard (Textual). It reads the live data layer; the data layer never imports it."""
