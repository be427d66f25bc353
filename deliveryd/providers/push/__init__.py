"""Push providers: FCM, OneSignal, Web Push."""
