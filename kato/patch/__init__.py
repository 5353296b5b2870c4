"""`kato patch status|install|revert`: named fixes laid over the installed platform."""
