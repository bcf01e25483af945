"""The storefront sink: what erpbridge knows, carried to the storefronts."""
