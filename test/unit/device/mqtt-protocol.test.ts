import {
  describeReasonCode,
  isRefusal,
  isTransientRefusal,
  parseMqttVersion,
  protocolLevel,
  publishPacketBytes,
} from '../../../device/mqtt-protocol';

test.each([
  ['3.1.1', '3.1.1', 4],
  ['5', '5', 5],
  [' 5 ', '5', 5],
] as const)('parseMqttVersion(%j) is %s, protocol level %s', (text, version, level) => {
  expect(parseMqttVersion(text)).toBe(version);
  expect(protocolLevel(parseMqttVersion(text))).toBe(level);
});

test.each(['4', '3', '5.0', 'mqtt5', 'v5', '3.1', ''])(
  'parseMqttVersion(%j) names the versions there are',
  (text) => {
    expect(() => parseMqttVersion(text)).toThrow(
      `"${text}" is not an MQTT version the simulator speaks: use "3.1.1" or "5"`,
    );
  },
);

test.each([
  [0x87, 'CONNACK', '5', '0x87 Not authorized'],
  [0x00, 'CONNACK', '5', '0x00 Success'],
  [0x05, 'CONNACK', '3.1.1', '0x05 Not authorized'],
  [0x02, 'CONNACK', '3.1.1', '0x02 Identifier rejected'],
  [0x01, 'SUBACK', '5', '0x01 Granted QoS 1'],
  [0x80, 'SUBACK', '3.1.1', '0x80 Failure'],
  [0x80, 'SUBACK', '5', '0x80 Unspecified error'],
  [0x9e, 'SUBACK', '5', '0x9e Shared Subscriptions not supported'],
  [0xa1, 'SUBACK', '5', '0xa1 Subscription Identifiers not supported'],
  [0x10, 'PUBACK', '5', '0x10 No matching subscribers'],
  [0x95, 'PUBACK', '5', '0x95 Packet too large'],
  [0x9b, 'PUBACK', '5', '0x9b QoS not supported'],
  [0x00, 'DISCONNECT', '5', '0x00 Normal disconnection'],
  [0x8e, 'DISCONNECT', '5', '0x8e Session taken over'],
  [0x06, 'CONNACK', '3.1.1', '0x06 (unknown reason code)'],
  [
    0x01,
    'CONNACK',
    '5',
    '0x01 Unacceptable protocol version (an MQTT 3.1.1 return code: the server does not speak MQTT 5)',
  ],
] as const)('describeReasonCode(%s, %s, MQTT %s) is %j', (code, packet, version, text) => {
  expect(describeReasonCode(code, packet, version)).toBe(text);
});

test.each([
  [0x00, 'CONNACK', false],
  [0x01, 'CONNACK', true],
  [0x05, 'CONNACK', true],
  [0x87, 'CONNACK', true],
  [0x02, 'SUBACK', false],
  [0x80, 'SUBACK', true],
  [0x10, 'PUBACK', false],
  [0x87, 'PUBACK', true],
] as const)('isRefusal(%s, %s) is %s', (code, packet, refused) => {
  expect(isRefusal(code, packet)).toBe(refused);
});

test.each([
  [0x97, true],
  [0x96, true],
  [0x89, true],
  [0x87, false],
  [0x95, false],
])('isTransientRefusal(%s) is %s', (code, transient) => {
  expect(isTransientRefusal(code)).toBe(transient);
});

test.each([
  // 1 fixed header byte + remaining length (1 byte below 128) + 2 + topic + 2 (id) [+ 1 properties] + payload
  ['a/b', '', '3.1.1', 1 + 1 + 2 + 3 + 2],
  ['a/b', '', '5', 1 + 1 + 2 + 3 + 2 + 1],
  ['a/b', 'x'.repeat(200), '5', 1 + 2 + 2 + 3 + 2 + 1 + 200],
  ['t', 'é', '3.1.1', 1 + 1 + 2 + 1 + 2 + 2],
] as const)('a QoS 1 PUBLISH on %j of %j on MQTT %s is %s bytes', (topic, payload, version, bytes) => {
  expect(publishPacketBytes(topic, payload, version)).toBe(bytes);
});
