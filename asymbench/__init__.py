"""asymbench."""
