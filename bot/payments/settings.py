"""Where fees are paid to and how long a citizen has: configuration of the payment requests.

The collection account is the province's (a State Treasury account at a bank that takes NAPAS
247 transfers); the embedded defaults are demo values that say so in the account name. The
callback secret is shared with the payment platform or the bank's notification service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.config import secret


@dataclass(frozen=True)
class PaymentSettings:
    bank_bin: str = "970405"  # the acquirer's NAPAS BIN (demo: Agribank)
    bank_name: str = "Agribank"
    account: str = "3761012345678"
    account_name: str = "KBNN DAK LAK DEMO"  # unaccented, at most 25 characters (VietQR 59)
    pay_working_days: int = 5  # the deadline: this many working days after submission
    remind_days_before: int = 1  # the one reminder of an unpaid fee
    callback_max_age_seconds: int = 300  # older signed callbacks are refused as replays

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PaymentSettings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            bank_bin=env.get("PAYMENT_BANK_BIN", defaults.bank_bin),
            bank_name=env.get("PAYMENT_BANK_NAME", defaults.bank_name),
            account=env.get("PAYMENT_ACCOUNT", defaults.account),
            account_name=env.get("PAYMENT_ACCOUNT_NAME", defaults.account_name),
            pay_working_days=int(env.get("PAYMENT_WORKING_DAYS", defaults.pay_working_days)),
            remind_days_before=int(
                env.get("PAYMENT_REMIND_DAYS_BEFORE", defaults.remind_days_before)
            ),
            callback_max_age_seconds=int(
                env.get("PAYMENT_CALLBACK_MAX_AGE", defaults.callback_max_age_seconds)
            ),
        )


def callback_secret() -> bytes:
    """The HMAC key of payment callbacks: PAYMENT_CALLBACK_SECRET, or generated under var/."""
    return secret("PAYMENT_CALLBACK_SECRET", "payment_callback.secret")
