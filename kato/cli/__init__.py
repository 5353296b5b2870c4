"""The command line: typer commands that parse options, call one domain function, render."""
