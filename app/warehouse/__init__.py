"""The warehouse cluster side: backends that create and drop real resources."""
