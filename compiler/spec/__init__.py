"""Reading and checking site specs."""
