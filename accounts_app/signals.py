from django.dispatch import Signal

# Sent by lifecycle.transition() inside the transaction of the change, with `account`,
# `from_state` and `to_state`. Other apps (billing) react without accounts_app knowing them.
account_state_changed = Signal()
