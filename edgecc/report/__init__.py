"""Results as data (the JSON contract), and their rendering for people."""
