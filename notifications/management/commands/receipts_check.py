from django.core.management.base import BaseCommand

from notifications import services
from notifications.emails import money


class Command(BaseCommand):
    help = (
        "List completed rides whose last receipt states a total other than what the card was "
        "charged; with --resend, send each a corrected receipt through the receipt job (once "
        "per ride, however often this runs)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--resend", action="store_true", help="queue a corrected receipt for each ride listed"
        )

    def handle(self, *args, resend: bool, **options) -> None:
        def progress(checked: int) -> None:
            self.stderr.write(f"  … {checked} receipts checked")

        found = queued = 0
        for mismatch in services.receipt_mismatches(progress=progress):
            found += 1
            said = money(mismatch.stated, mismatch.currency, "en")
            charged = money(mismatch.charged, mismatch.currency, "en")
            line = f"ride {mismatch.ride_id}: receipt said {said}, card charged {charged}"
            if resend:
                job = services.receipt_correct(ride_id=mismatch.ride_id)
                queued += 1
                line += f" -> corrected receipt, job {job.pk} ({job.state})"
            self.stdout.write(line)
        summary = f"{found} receipt(s) disagree with the charge"
        if resend:
            summary += f"; {queued} corrected receipt job(s) queued or already there"
        elif found:
            summary += "; run again with --resend to send corrected receipts"
        self.stdout.write(self.style.SUCCESS(summary) if not found else summary)
