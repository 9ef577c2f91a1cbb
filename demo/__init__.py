"""Demo adapters: real sentiment adapters trained on all-MiniLM-L6-v2 with Rotten Tomatoes snippets."""
