"""The tables the source articles publish, as CSV with their source: package data, read by
`qlab.infra.tables.published`. See README.md beside this file."""
