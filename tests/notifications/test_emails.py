"""What the emails say and how they are built: every template renders in both parts, with the
rider's name and locale-formatted amounts, and HTML a mail client shows as is."""

import re

import pytest

from bimride.errors import NotFound
from notifications import emails
from tests.factories import DriverFactory, RiderFactory, UserFactory
from tests.notifications.conftest import completed_ride

EXTERNAL = re.compile(
    r"https?://|//[a-z0-9.-]+\.[a-z]{2,}|<link|<script|<img|<iframe|url\(|@import"
)


def built(template: str, rider) -> emails.Email:
    ride = completed_ride(rider)
    return {
        "welcome": lambda: emails.welcome(user_id=rider.user_id),
        "receipt": lambda: emails.receipt(ride_id=ride.pk),
        "ride_cancelled": lambda: emails.ride_cancelled(ride_id=ride.pk, cancelled_by="driver"),
        "payment_failed": lambda: emails.payment_failed(
            ride_id=ride.pk, amount=1174, currency="usd", reason="Your card was declined."
        ),
        "refund_confirmation": lambda: emails.refund_confirmation(
            ride_id=ride.pk, refund_id=3, amount=500, currency="usd"
        ),
    }[template]()


TEMPLATES = ["welcome", "receipt", "ride_cancelled", "payment_failed", "refund_confirmation"]


@pytest.mark.django_db
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_email_renders_both_parts_with_the_riders_name(template):
    rider = RiderFactory(name="Ada Lovelace", user__email="ada@example.com")
    email = built(template, rider)
    text, html = emails.render(email)
    assert email.to == "ada@example.com" and email.subject
    assert "Hi Ada Lovelace," in text and "Hi Ada Lovelace," in html
    assert "{{" not in text + html and "{%" not in text + html
    assert "<" not in text  # the plain text part is plain


@pytest.mark.django_db
@pytest.mark.parametrize("template", TEMPLATES)
def test_the_html_is_inline_styled_and_fetches_nothing(template):
    html = emails.render(built(template, RiderFactory()))[1]
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert not EXTERNAL.search(html.lower()), EXTERNAL.search(html.lower())
    assert "<style" not in html and 'class="' not in html  # clients drop both
    assert 'role="presentation"' in html and 'style="' in html


@pytest.mark.django_db
def test_the_receipt_shows_route_distance_duration_breakdown_and_number(rider):
    ride = completed_ride(rider)
    email = emails.receipt(ride_id=ride.pk)
    text, html = emails.render(email)
    number = f"BR-{ride.completed_at:%Y%m%d}-{ride.pk:06d}"
    assert email.subject == f"Your BimRide receipt {number}"
    for part in (text, html):
        assert number in part
        assert "52.5200, 13.4050" in part and "52.5000, 13.4500" in part
        assert "4.20 km" in part and "14 min" in part
        for amount in ("$2.50", "$5.04", "$4.20", "$11.74"):
            assert amount in part
        assert "Discount" not in part and "card ending" not in part  # no card on file
    assert "Base fare: $2.50" in text and "Total: $11.74" in text


@pytest.mark.django_db
def test_the_receipt_reads_the_card_and_the_discount_on_the_final_fare(rider):
    from payments.models import StripeCustomer
    from rides.models import PromoCode, PromoRedemption

    charged = 1174 - 200
    ride = completed_ride(
        rider, charges={"authorized": 1000, "captured": 974, "released": 26, "settled": True}
    )
    StripeCustomer.objects.create(
        rider=rider, customer_id="cus_1", payment_method_id="pm_1", card_last4="4242"
    )
    promo = PromoCode.objects.create(
        code="WELCOME2", kind="fixed", value=200, usage_limit=10, times_used=1
    )
    PromoRedemption.objects.create(promo=promo, ride=ride, rider=rider)
    email = emails.receipt(ride_id=ride.pk)
    text, html = emails.render(email)
    assert "Discount (WELCOME2): -$2.00" in text and "Total: $9.74" in text
    assert "card ending in 4242" in text and email.amount == charged
    assert "-$2.00" in html and "$9.74" in html and "4242" in html


@pytest.mark.django_db
def test_the_receipt_shows_the_total_only_when_the_tariff_changed_since(rider, settings):
    ride = completed_ride(rider)
    settings.FARE_BASE = 300
    text = emails.render(emails.receipt(ride_id=ride.pk))[0]
    assert "Base fare" not in text and "Total: $11.74" in text


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (1174, "usd", "en-us", "$11.74"),
        (123456, "usd", "en-us", "$1,234.56"),
        (-200, "usd", "en-us", "-$2.00"),
        (123456, "eur", "de", "1.234,56\u00a0€"),
        (123456, "eur", "fr", "1\u00a0234,56\u00a0€"),
        (1500, "jpy", "en-us", "¥1,500"),
        (1250, "chf", "en-us", "CHF\u00a012.50"),
    ],
)
def test_amounts_are_formatted_for_the_locale(amount, currency, locale, expected):
    assert emails.money(amount, currency, locale) == expected


@pytest.mark.django_db
def test_a_receipt_in_german_formats_numbers_the_german_way(rider, settings):
    settings.LANGUAGE_CODE = "de"
    ride = completed_ride(rider, currency="eur")
    text = emails.render(emails.receipt(ride_id=ride.pk))[0]
    assert "4,20 km" in text and "11,74\u00a0€" in text and "52,5200, 13,4050" in text


@pytest.mark.django_db
def test_names_are_escaped_in_html_and_left_alone_in_text():
    rider = RiderFactory(name="O'Brien <Bob>")
    text, html = emails.render(emails.welcome(user_id=rider.user_id))
    assert "Hi O'Brien <Bob>," in text
    assert "O&#x27;Brien &lt;Bob&gt;" in html and "<Bob>" not in html


@pytest.mark.django_db
def test_the_cancellation_notice_says_whether_the_driver_cancelled_or_no_driver_came(rider):
    ride = completed_ride(rider, status="cancelled")
    by_driver = emails.ride_cancelled(ride_id=ride.pk, cancelled_by="driver")
    expired = emails.ride_cancelled(ride_id=ride.pk, cancelled_by="system")
    assert by_driver.subject == "Your driver cancelled your ride"
    assert expired.subject == "No driver was available for your ride"
    assert "your driver had to cancel" in emails.render(by_driver)[0]
    assert "no driver could take the ride" in emails.render(expired)[0]


@pytest.mark.django_db
def test_a_driver_is_welcomed_as_a_driver():
    driver = DriverFactory(name="Grace")
    text = emails.render(emails.welcome(user_id=driver.user_id))[0]
    assert "Hi Grace," in text and "set yourself available" in text


@pytest.mark.django_db
def test_an_email_for_what_does_not_exist_is_a_not_found(rider):
    with pytest.raises(NotFound):
        emails.welcome(user_id=10**9)
    with pytest.raises(NotFound):
        emails.receipt(ride_id=completed_ride(rider, status="cancelled").pk)
    with pytest.raises(NotFound):
        emails.welcome(user_id=UserFactory(email="").pk)


@pytest.mark.django_db
def test_the_message_has_both_parts_a_message_id_and_the_template_as_tag(rider):
    message = emails.message_for(emails.welcome(user_id=rider.user_id))
    assert message.to == [rider.user.email] and message.subject == "Welcome to BimRide"
    assert message.alternatives[0][1] == "text/html"
    assert re.fullmatch(r"<.+@bimride\.example>", message.extra_headers["Message-ID"])
    assert message.tags == ["welcome"]
