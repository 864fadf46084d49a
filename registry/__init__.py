"""Who is who: drivers, vehicles, devices, their provisioning and the device directory.

Anything that asks "who owns this vehicle" or "which key speaks for this device" imports this
package. Unions, developers and API keys will hang off it.
"""
