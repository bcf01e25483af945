"""WooCommerce: orders (placed, cancelled, completed, refunded) and product stock."""
