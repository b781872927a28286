"""Running a plan: bounded concurrent transfers, progress, deletes last, the report."""
