"""Storefront and payment webhooks into erpbridge's input topics: one pure mapping and one
signature check per provider (shopify/, woocommerce/, stripe/, adyen/), one service."""
