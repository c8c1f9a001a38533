"""What people read: sanitized pages, bounded rendering, feedback, the class report and CSV cells."""
