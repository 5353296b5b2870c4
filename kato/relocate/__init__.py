"""`kato relocate`: move data dirs to bigger filesystems, with quotas that survive a reboot."""
