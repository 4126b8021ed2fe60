"""The format of docs/format.md: layout, paths, text encodings, records, journal, store."""
