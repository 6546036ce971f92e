"""Staff access: sign-in lockout, the second factor, staff session idle time, the sign-in audit.

Libraries do the work: django-axes counts failed sign-ins and refuses locked-out accounts and
addresses, django-otp verifies TOTP and recovery codes. This package wires them into every way
in (the admin, the browsable API's login, `POST /api/auth/token`) and records who signed in.
"""
