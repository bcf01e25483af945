// Medusa's configuration for erpbridge's local storefront (streams/local/medusa.py).
// The database and the secrets come from the environment the launcher sets (STORE_CORS,
// ADMIN_CORS and AUTH_CORS may widen the origins). No REDIS_URL: the event bus, cache, workflow engine and locks are in memory.
// The admin dashboard is not built nor served: erpbridge speaks only the Admin and Store APIs.
const { defineConfig } = require("@medusajs/framework/utils")

function required(name) {
  const value = process.env[name]
  if (!value) throw new Error(`erpbridge medusa: ${name} is not set`)
  return value
}

// Browsers are not erpbridge's way in: the origins matter only to a storefront page.
const origin = "http://127.0.0.1"

module.exports = defineConfig({
  projectConfig: {
    databaseUrl: required("DATABASE_URL"),
    http: {
      storeCors: process.env.STORE_CORS || origin,
      adminCors: process.env.ADMIN_CORS || origin,
      authCors: process.env.AUTH_CORS || origin,
      jwtSecret: required("JWT_SECRET"),
      cookieSecret: required("COOKIE_SECRET"),
    },
  },
  admin: { disable: true },
})
