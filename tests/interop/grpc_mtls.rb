# A gRPC call over mutual TLS with Ruby grpc, as in the answer to the gRPC CERTIFICATE_VERIFY_FAILED question:
# ServerCredentials(client_ca, [{private_key, cert_chain}], true) on the
# server and ChannelCredentials(server_ca, client_key, client_cert) on the
# client. No protoc needed: the messages are raw strings.
#
# usage: ruby grpc_mtls.rb CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY TARGET_NAME
require 'grpc'

ca, srv_crt, srv_key, cli_crt, cli_key, target_name = ARGV

# The marshaller is looked up on the message's class, so messages are Raw.
Raw = Struct.new(:bytes) do
  def self.encode(msg) = msg.bytes
  def self.decode(bytes) = new(bytes)
end

class Echo
  include GRPC::GenericService
  self.marshal_class_method = :encode
  self.unmarshal_class_method = :decode
  self.service_name = 'certforge.Echo'
  rpc :Say, Raw, Raw
end

class EchoImpl < Echo
  def say(req, _call) = req
end

server = GRPC::RpcServer.new
port = server.add_http2_port(
  '127.0.0.1:0',
  GRPC::Core::ServerCredentials.new(File.read(ca), [{ private_key: File.read(srv_key), cert_chain: File.read(srv_crt) }], true)
)
server.handle(EchoImpl)
thread = Thread.new { server.run }
server.wait_till_running(10)
begin
  creds = GRPC::Core::ChannelCredentials.new(File.read(ca), File.read(cli_key), File.read(cli_crt))
  stub = Echo.rpc_stub_class.new("127.0.0.1:#{port}", creds, channel_args: { 'grpc.ssl_target_name_override' => target_name })
  reply = stub.say(Raw.new('hello'), deadline: Time.now + 10)
  raise "bad reply #{reply.inspect}" unless reply.bytes == 'hello'
  puts 'ok'
  code = 0
rescue StandardError => e
  puts "client: #{e.class}: #{e.message}"
  code = 1
ensure
  server.stop
  thread.join
end
exit code
