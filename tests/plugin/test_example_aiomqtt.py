import asyncio

import aiomqtt
import pytest

from ports.cpython.testing import arunning


@pytest.mark.asyncio
async def test_publish_and_receive(mqtt_broker):
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as sub, \
            aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as pub:
        await sub.subscribe("home/+/temperature", qos=1)
        await pub.publish("home/kitchen/temperature", b"21.5", qos=1)
        async with asyncio.timeout(5):
            msg = await anext(sub.messages)
    assert msg.topic.value == "home/kitchen/temperature"
    assert msg.payload == b"21.5"


@pytest.mark.asyncio
async def test_retained_message_with_arunning():
    # Without the fixture: a broker for this block only, configured in place.
    async with arunning("max_retained_messages 10") as broker:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.publish("home/door", b"closed", qos=1, retain=True)
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe("home/#")
            async with asyncio.timeout(5):
                msg = await anext(client.messages)
    assert msg.retain and msg.payload == b"closed"
