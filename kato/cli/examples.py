"""Two or three examples for every command, shown at the end of its --help (app.py attaches
them; tests/cli checks that every command has some and that each names a real command)."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "status": (
        "kato status",
        "kato status --node node2 --verbose",
        "kato status --prometheus /var/lib/node_exporter/textfile_collector/kato.prom",
    ),
    "install": (
        "kato install --dry-run",
        "kato install --version 1.0.0",
        "kato install --node node3",
    ),
    "uninstall": ("kato uninstall --dry-run", "kato uninstall --node node3"),
    "start": ("kato start", "kato start --role router --node node2", "kato start --dry-run"),
    "stop": ("kato stop --role router --node node2", "kato stop --dry-run"),
    "restart": (
        "kato restart --role controller --verbose",
        "kato restart --node node2 --parallel 1 --json",
    ),
    "version": ("kato version", "kato version --json"),
    "check": (
        "kato check",
        "kato check --node node2 --warn disk=70 --crit disk=85",
        "kato check -w load=1.5,backup=13h -c load=3,backup=25h",
    ),
    "relocate": (
        "kato relocate droplets /mnt/ebs/droplets --dry-run",
        "kato relocate containers /mnt/ebs/containers --app-limit 2G",
        "kato relocate status --json",
    ),
    "release list": ("kato release list", "kato release list --json"),
    "release show": ("kato release show 1.2.0", "kato release show 2.0.0 --json"),
    "release prune": ("kato release prune --keep 2 --dry-run", "kato release prune --keep 2"),
    "upgrade plan": (
        "kato upgrade plan 1.2.0",
        "kato upgrade plan 1.2.0 --kind graceful --json",
        "kato upgrade plan 1.0.0 --allow-downgrade",
    ),
    "upgrade stage": ("kato upgrade stage 1.2.0 --dry-run", "kato upgrade stage 1.2.0"),
    "upgrade in-place": (
        "kato upgrade in-place 1.2.0 --dry-run",
        "kato upgrade in-place 1.2.0 --backup-dir /srv/backups",
    ),
    "upgrade prep": ("kato upgrade prep 1.2.0 --dry-run", "kato upgrade prep 1.2.0 --stateless"),
    "upgrade takeover": ("kato upgrade takeover 1.2.0", "kato upgrade takeover 1.2.0 --json"),
    "upgrade rollback": ("kato upgrade rollback --dry-run", "kato upgrade rollback --yes"),
    "upgrade status": ("kato upgrade status", "kato upgrade status --json"),
    "upgrade resume": ("kato upgrade resume", "kato upgrade resume --lock-wait 5m"),
    "upgrade task": (
        "kato upgrade task 1.2.0 --role controller -- bin/migrate --help",
        "kato upgrade task 1.2.0 --role postgresql --node node1 -- psql -c 'select 1'",
    ),
    "upgrade tasks": ("kato upgrade tasks", "kato upgrade tasks --limit 50 --json"),
    "history": ("kato history", "kato history --limit 100 --json"),
    "run": (
        "kato run -- uptime",
        "kato run --role router --serial 1 --wait-healthy -- systemctl reload nginx",
        "kato run --node node2 --dry-run -- reboot",
    ),
    "config show": ("kato config show", "kato --cluster ./cluster.yaml config show --json"),
    "config validate": ("kato config validate", "kato --cluster ./new.yaml config validate --json"),
    "node list": ("kato node list", "kato node list --json"),
    "node trust": (
        "kato node trust -n node1 --fingerprint SHA256:8DnMcTVia71qyRcY9xtozx3qhjbyhGumsTGT1yw728Y",
        "kato node trust --fingerprints fingerprints.txt",
        "kato node trust --all --from-known-hosts ~/.ssh/known_hosts --dry-run",
    ),
    "node show": ("kato node show --node node1", "kato node show --role router --json"),
    "node check": ("kato node check", "kato node check --node node2 --json"),
    "lock status": ("kato lock status", "kato lock status --json"),
    "lock break": ("kato lock break 1f2e3d4c", "kato lock break 1f2e3d4c --yes --json"),
    "patch status": ("kato patch status", "kato patch status --json"),
    "patch install": (
        "kato patch install --dry-run",
        "kato patch install router-nosniff --canary node2",
        "kato patch install --no-restart --node node3",
    ),
    "patch revert": (
        "kato patch revert router-nosniff",
        "kato patch revert router-nosniff --dry-run",
    ),
    "data export": (
        "kato data export /srv/backups",
        "kato data export - --role postgresql > db.tar.zst",
        "kato data export /srv/backups --dry-run",
    ),
    "data verify": (
        "kato data verify /srv/backups/prod-20260101T030000Z.tar.zst",
        "kato data verify ARCHIVE --deep --json",
    ),
    "data import": (
        "kato data import /srv/backups/prod-20260101T030000Z.tar.zst --dry-run",
        "kato data import - --role redis < redis.tar.zst",
        "kato data import ssh://root@old-core.example.org",
    ),
    "data cleanup": ("kato data cleanup --dry-run", "kato data cleanup --node node1"),
    "data backups": (
        "kato data backups /srv/backups",
        "kato data backups /srv/backups --no-verify",
    ),
    "data schedule add": (
        "kato data schedule add --cron '0 3 * * *' --dest /srv/backups --keep 7",
        "kato data schedule add --cron @hourly --dest /srv/db --role postgresql --dry-run",
    ),
    "data schedule list": ("kato data schedule list", "kato data schedule list --json"),
    "data schedule remove": (
        "kato data schedule remove 4f0c1a2b",
        "kato data schedule remove 4f0c1a2b --dry-run --json",
    ),
    "data schedule run": (
        "kato data schedule run --dest /srv/backups --keep 7",
        "kato data schedule run --dest /srv/backups --dry-run",
        "kato data schedule run --dest /srv/backups --parallel 2",
    ),
    "sandbox up": (
        "kato sandbox up --nodes 3",
        "kato sandbox up --name demo --bastion --user admin",
        "kato sandbox up --nodes 1 --bare --json",
    ),
    "sandbox status": ("kato sandbox status", "kato sandbox status --name demo --json"),
    "sandbox down": ("kato sandbox down", "kato sandbox down --name demo"),
    "sandbox disk": (
        "kato sandbox disk node2 --fs btrfs --size 512M --at /mnt/ebs",
        "kato sandbox disk node2 --at /mnt/ebs --remove",
    ),
}
FAULTS = ("crash", "start", "stop", "freeze", "thaw", "partition", "heal", "reboot")
EXAMPLES |= {
    f"sandbox {v}": (f"kato sandbox {v} node2", f"kato sandbox {v} node3 --name demo")
    for v in FAULTS
}


def epilog(path: str) -> str | None:
    """The examples of the command at `path` as a help epilog (kept as written: \\b)."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
