# SPDX-License-Identifier: MIT
"""`python -m dinowm.alerts`: deliver the alert on stdin (started detached by notify)."""

from dinowm.alerts.deliver import main

main()
