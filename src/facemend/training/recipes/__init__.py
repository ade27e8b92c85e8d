"""One training recipe per model: how it is built, which losses it knows, and one step."""
