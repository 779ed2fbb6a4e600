"""Alert emails: rendering and the local SMTP sink of the embedded stack."""
