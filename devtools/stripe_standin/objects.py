"""Stripe's objects as the stand-in keeps them: customers, payment methods, payment intents
(authorise, capture, cancel, charge), refunds, connected accounts and transfers, with Stripe's
validation, state machine and error shapes. `StripeStandin` (server.py) holds the state and
calls `_route` with its lock held."""

import secrets
import time
from collections import Counter
from threading import Event
from urllib.parse import parse_qsl

DECLINING_METHODS = {"pm_card_chargeDeclined": "generic_decline"}


def parse_form(body: str) -> dict:
    """Stripe's form encoding (`metadata[ride_id]=7`, `expand[0]=x`) back into nested dicts."""
    result: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


class StripeStandinError(Exception):
    def __init__(self, status: int, error: dict):
        super().__init__(error.get("message", ""))
        self.status, self.error = status, error


def _invalid(message: str, code: str = "parameter_invalid", param: str | None = None):
    error = {"type": "invalid_request_error", "code": code, "message": message}
    if param:
        error["param"] = param
    return StripeStandinError(400, error)


def _missing(kind: str, object_id: str):
    return StripeStandinError(
        404,
        {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such {kind}: '{object_id}'",
        },
    )


class StripeObjects:
    """The objects and what each request does to them; no HTTP, no locking."""

    customers: dict[str, dict]
    payment_methods: dict[str, dict]
    intents: dict[str, dict]
    refunds: dict[str, dict]
    accounts: dict[str, dict]
    transfers: dict[str, dict]
    captured: Event
    _captures: Counter

    def _route(self, method: str, parts: list[str], params: dict, injected) -> dict:
        if parts[0] != "v1" or len(parts) < 2:
            raise _invalid("Unrecognized request URL.", code="url_invalid")
        resource, rest = parts[1], parts[2:]
        if injected is not None and injected.kind == "invalid":
            raise _invalid("Invalid request (injected).", code="parameter_invalid_integer")
        if resource == "customers":
            if method == "POST" and not rest:
                return self._create_customer(params)
            return self._get(self.customers, "customer", rest)
        if resource == "payment_methods":
            if method == "POST" and len(rest) == 2 and rest[1] == "attach":
                return self._attach(rest[0], params)
            return self._get(self.payment_methods, "payment_method", rest)
        if resource == "payment_intents":
            if method == "POST" and not rest:
                return self._create_intent(params, injected)
            if method == "POST" and len(rest) == 2:
                intent = self._get(self.intents, "payment_intent", rest[:1])
                action = {"confirm": self._confirm, "capture": self._capture}.get(rest[1])
                if rest[1] == "cancel":
                    return self._cancel(intent)
                if action is None:
                    raise _invalid("Unrecognized request URL.", code="url_invalid")
                return action(intent, params, injected)
            return self._get(self.intents, "payment_intent", rest)
        if resource == "refunds":
            if method == "POST" and not rest:
                return self._create_refund(params)
            return self._get(self.refunds, "refund", rest)
        if resource == "accounts":
            if method == "POST" and not rest:
                return self._create_account(params)
            return self._get(self.accounts, "account", rest)
        if resource == "transfers":
            if method == "POST" and not rest:
                return self._create_transfer(params, injected)
            if method == "GET" and not rest:
                return self._list(self.transfers, params, ("destination", "transfer_group"))
            return self._get(self.transfers, "transfer", rest)
        raise _invalid("Unrecognized request URL.", code="url_invalid")

    @staticmethod
    def _get(objects: dict, kind: str, rest: list[str]) -> dict:
        if len(rest) != 1 or rest[0] not in objects:
            raise _missing(kind, rest[0] if rest else "")
        return objects[rest[0]]

    @staticmethod
    def _list(objects: dict, params: dict, filters: tuple[str, ...]) -> dict:
        """Newest first, filtered by equality on `filters`; one page of up to `limit`."""
        wanted = {name: params[name] for name in filters if name in params}
        found = [o for o in objects.values() if all(o.get(k) == v for k, v in wanted.items())]
        limit = int(params.get("limit") or 10)
        return {"object": "list", "data": found[::-1][:limit], "has_more": len(found) > limit}

    # --- objects --------------------------------------------------------------------------------
    def _create_customer(self, params: dict) -> dict:
        customer = {
            "id": f"cus_{secrets.token_hex(7)}",
            "object": "customer",
            "created": int(time.time()),
            "email": params.get("email"),
            "name": params.get("name"),
            "metadata": params.get("metadata", {}),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return customer

    def _attach(self, token: str, params: dict) -> dict:
        customer = params.get("customer")
        if customer not in self.customers:
            raise _missing("customer", customer or "")
        if not token.startswith("pm_"):
            raise _missing("payment_method", token)
        method = {
            "id": f"pm_{secrets.token_hex(8)}",
            "object": "payment_method",
            "type": "card",
            "customer": customer,
            "card": {"brand": "visa", "last4": "0002" if token in DECLINING_METHODS else "4242"},
            "livemode": False,
            "_declines": DECLINING_METHODS.get(token),
        }
        self.payment_methods[method["id"]] = method
        return {k: v for k, v in method.items() if not k.startswith("_")}

    def _create_intent(self, params: dict, injected) -> dict:
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            raise _invalid("Invalid integer: amount", "parameter_invalid_integer", "amount")
        if amount < 50:
            raise _invalid("Amount must be at least 50 cents.", "amount_too_small", "amount")
        intent = {
            "id": f"pi_{secrets.token_hex(8)}",
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": params.get("currency", "usd").lower(),
            "customer": params.get("customer"),
            "payment_method": params.get("payment_method"),
            "capture_method": params.get("capture_method", "automatic"),
            "status": "requires_confirmation"
            if params.get("payment_method")
            else "requires_payment_method",
            "metadata": params.get("metadata", {}),
            "last_payment_error": None,
            "latest_charge": None,
            "created": int(time.time()),
            "livemode": False,
        }
        self.intents[intent["id"]] = intent
        if params.get("confirm") == "true":
            return self._confirm(intent, {}, injected)
        return intent

    def _confirm(self, intent: dict, params: dict, injected) -> dict:
        if params.get("payment_method"):
            intent["payment_method"] = params["payment_method"]
        if intent["status"] not in ("requires_confirmation", "requires_payment_method"):
            raise self._unexpected(intent, "confirm")
        method = self.payment_methods.get(intent["payment_method"] or "")
        if method is None:
            raise _missing("payment_method", intent["payment_method"] or "")
        decline = method.get("_declines")
        if injected is not None and injected.kind in ("decline", "insufficient_funds"):
            decline = "generic_decline" if injected.kind == "decline" else "insufficient_funds"
        if decline:
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": decline,
                "message": "Your card was declined."
                if decline == "generic_decline"
                else "Your card has insufficient funds.",
                "payment_method": {"id": method["id"], "type": "card"},
            }
            intent.update(status="requires_payment_method", last_payment_error=error)
            raise StripeStandinError(402, {**error, "payment_intent": dict(intent)})
        intent["latest_charge"] = f"ch_{secrets.token_hex(8)}"
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
        return intent

    def _capture(self, intent: dict, params: dict, injected) -> dict:
        if intent["status"] != "requires_capture":
            raise self._unexpected(intent, "capture")
        amount = int(params.get("amount_to_capture") or intent["amount"])
        if not 1 <= amount <= intent["amount_capturable"]:
            raise _invalid(
                "The amount to capture must be at most the amount capturable.",
                "amount_too_large",
                "amount_to_capture",
            )
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._captures[intent["id"]] += 1
        self.captured.set()
        return intent

    def _cancel(self, intent: dict) -> dict:
        if intent["status"] in ("succeeded", "canceled"):
            raise self._unexpected(intent, "cancel")
        intent.update(status="canceled", amount_capturable=0, canceled_at=int(time.time()))
        return intent

    def _create_refund(self, params: dict) -> dict:
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None:
            raise _missing("payment_intent", params.get("payment_intent", ""))
        if intent["status"] != "succeeded":
            raise _invalid("This PaymentIntent has no charge to refund.", "charge_not_refundable")
        refunded = sum(
            r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"]
        )
        available = intent["amount_received"] - refunded
        amount = int(params.get("amount") or available)
        if available <= 0:
            raise _invalid("Charge has already been refunded.", "charge_already_refunded")
        if not 1 <= amount <= available:
            raise _invalid(
                "Refund amount is greater than the unrefunded amount.", "amount_too_large", "amount"
            )
        refund = {
            "id": f"re_{secrets.token_hex(8)}",
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "charge": intent["latest_charge"],
            "status": "succeeded",
            "reason": params.get("reason"),
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        return refund

    def _create_account(self, params: dict) -> dict:
        if params.get("type") not in ("express", "custom", "standard"):
            raise _invalid("Invalid type: must be express, custom or standard.", param="type")
        account = {
            "id": f"acct_{secrets.token_hex(8)}",
            "object": "account",
            "type": params["type"],
            "country": params.get("country", "US"),
            "email": params.get("email"),
            "capabilities": dict.fromkeys(params.get("capabilities", {}), "active"),
            "charges_enabled": True,
            "payouts_enabled": True,
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
        }
        self.accounts[account["id"]] = account
        return account

    def _create_transfer(self, params: dict, injected) -> dict:
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            raise _invalid("Invalid integer: amount", "parameter_invalid_integer", "amount")
        if amount < 1:
            raise _invalid("Amount must be at least 1.", "amount_too_small", "amount")
        destination = params.get("destination", "")
        if destination not in self.accounts:
            raise _invalid(
                f"No such destination: '{destination}'", "resource_missing", "destination"
            )
        if injected is not None and injected.kind == "insufficient_funds":
            raise _invalid(
                "You have insufficient available funds in your Stripe account.",
                "balance_insufficient",
            )
        transfer = {
            "id": f"tr_{secrets.token_hex(8)}",
            "object": "transfer",
            "amount": amount,
            "currency": params.get("currency", "usd").lower(),
            "destination": destination,
            "transfer_group": params.get("transfer_group"),
            "metadata": params.get("metadata", {}),
            "reversed": False,
            "created": int(time.time()),
            "livemode": False,
        }
        self.transfers[transfer["id"]] = transfer
        return transfer

    @staticmethod
    def _unexpected(intent: dict, action: str) -> StripeStandinError:
        return StripeStandinError(
            400,
            {
                "type": "invalid_request_error",
                "code": "payment_intent_unexpected_state",
                "message": f"This PaymentIntent could not be {action}ed because it has a status "
                f"of {intent['status']}.",
                "payment_intent": dict(intent),
            },
        )
