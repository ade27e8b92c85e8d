"""Networks only: built from arguments or configs, never reading files."""
