"""The devices and preferences API's shapes. A device's push token goes in and never comes out."""

from rest_framework import serializers

from notifications.models import Device, Kind

TOKEN_MAX = 1024  # FCM's tokens are about 160 characters; anything this long is not one


class DeviceInput(serializers.Serializer):
    token = serializers.CharField(min_length=1, max_length=TOKEN_MAX, trim_whitespace=True)
    platform = serializers.ChoiceField(choices=Device.Platform.choices)
    app_version = serializers.CharField(max_length=40, required=False, allow_blank=True)
    # A BCP 47 tag ("de-DE"): its language picks the pushes' templates; an unknown one gets
    # English.
    locale = serializers.CharField(max_length=20, required=False, default="en")


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "platform", "app_version", "locale", "active", "created_at", "last_seen_at"]
        read_only_fields = fields


class PreferenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Kind.choices)
    audience = serializers.CharField(read_only=True, help_text="who hears it: rider or driver")
    push = serializers.BooleanField()
    email = serializers.BooleanField(allow_null=True, help_text="null: the kind has no email")


class PreferencesSerializer(serializers.Serializer):
    preferences = PreferenceSerializer(many=True)


class PreferenceChange(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Kind.choices)
    push = serializers.BooleanField(required=False)
    email = serializers.BooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        if "push" not in attrs and "email" not in attrs:
            raise serializers.ValidationError("Give push, email or both.")
        return attrs


class PreferencesInput(serializers.Serializer):
    preferences = PreferenceChange(many=True, allow_empty=False, max_length=len(Kind.choices))
