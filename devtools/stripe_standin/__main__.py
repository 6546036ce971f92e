"""`python -m devtools.stripe_standin --port 12111 [--state FILE]`: run it until Ctrl-C."""

from devtools.stripe_standin.server import main

main()
