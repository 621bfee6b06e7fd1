"""Share links: anyone with the URL downloads one file, within the limits its owner set
(expiry, a password, a number of downloads)."""
