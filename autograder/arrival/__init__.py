"""What arrives: student ids, regular files only, archives within caps, notebooks read as hostile data."""
