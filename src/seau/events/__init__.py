"""Telling the application what happened: an outbox of events written with the
changes they report, and the dispatcher that delivers them as Standard Webhooks."""
