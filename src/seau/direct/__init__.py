"""Direct uploads: bytes sent straight to the store, a file once seau verified them
(docs/decisions.md, "Direct uploads")."""
