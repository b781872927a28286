"""I/O adapters: the only code that touches boto3 or the filesystem."""
