"""Import paths of release 0.2.0 that users may have written; the code moved (see CHANGELOG.md, release 0.2.0)."""
