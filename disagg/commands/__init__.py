"""One module per subcommand (ruff's crates/ruff/src/commands/ layout); `disagg.cli` only parses and dispatches."""
