"""Provider profiles: auth scheme, verify call, dialect and request shapes."""

from pooltui.providers.profiles import PROFILES, ApiRequest, ProviderProfile, UnknownProviderError, profile_for

__all__ = ["PROFILES", "ApiRequest", "ProviderProfile", "UnknownProviderError", "profile_for"]
