"""Offboarding: remove one person's access everywhere, with a plan, a journal, resume
after a crash, and a receipt an auditor is shown."""
