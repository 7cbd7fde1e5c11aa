"""Talking to Elasticsearch: a local server for development and tests, and the HTTP calls."""
