"""`python -m shared.check_settings`: validate DFD_* settings and exit 2 with the reason if bad."""

import sys

from shared.settings import SettingsError, load


def main() -> int:
    """Print the problem with the settings, if any; 0 when they are usable."""
    try:
        load()
    except SettingsError as exc:
        print(f"dfd: bad setting: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
