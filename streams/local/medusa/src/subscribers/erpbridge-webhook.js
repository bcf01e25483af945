// Hands every Medusa event to erpbridge: a JSON POST of {name, data, metadata} to
// ERPBRIDGE_WEBHOOK_URL, or nothing at all when that is not set. Medusa 2 has no outgoing
// webhooks of its own; a subscriber on "*" hears each event the (local) event bus emits.
// Delivery is best effort: a receiver that is down misses the event (erpbridge also polls).
// Plain CommonJS, so `medusa start` loads it without a build step.
const target = process.env.ERPBRIDGE_WEBHOOK_URL || ""
const TIMEOUT_MS = 5000

async function forwardToErpbridge({ event }) {
  if (!target) return
  const body = JSON.stringify({
    name: event.name,
    data: event.data,
    metadata: event.metadata || {},
  })
  try {
    const response = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    if (!response.ok) {
      console.error(`erpbridge webhook: ${event.name} answered ${response.status}`)
    }
  } catch (error) {
    console.error(`erpbridge webhook: ${event.name} not delivered: ${error}`)
  }
}

exports.default = forwardToErpbridge
exports.config = { event: "*", context: { subscriberId: "erpbridge-webhook" } }
