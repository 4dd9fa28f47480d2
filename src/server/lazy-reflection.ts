/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, as @grpc/reflection serves them), built on its first call
 * rather than at every server start. @grpc/reflection decodes and indexes every descriptor in its constructor and
 * parses reflection.proto again in each addToServer: measured 290-330 ms per server (890 ms for the first) on this
 * project's 2-vCPU VM under the test suite's load, paid by every `cuemux serve` and every test that starts a server,
 * while almost none is ever asked for reflection (grpcurl, grpc_cli). Registered here are the two methods' paths with
 * handlers and (de)serializers that build the real service once per process, on the first request, and delegate.
 */
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

/** One reflection method as @grpc/reflection registers it: its definition and its bound handler. */
interface ReflectionMethod {
  definition: grpc.MethodDefinition<unknown, unknown>;
  handler: grpc.handleBidiStreamingCall<unknown, unknown>;
}

/** The reflection versions @grpc/reflection 1.x serves; each has one bidi method. */
const PATHS = ['v1', 'v1alpha'].map((version) => `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`);
const METHOD = 'ServerReflectionInfo';

/** What a server's reflection describes: proto files and the folders their imports resolve against. */
export interface ReflectionProtos {
  /** The .proto files of every service served (absolute paths). */
  files: string[];
  /** Folders imports are resolved against. */
  includeDirs: string[];
}

let built: Map<string, ReflectionMethod> | null = null;

/** Builds the real reflection service once per process (every server serves the same protos) and keeps its methods. */
function realMethods(protos: ReflectionProtos): Map<string, ReflectionMethod> {
  if (built) return built;
  const methods = new Map<string, ReflectionMethod>();
  // A stand-in server that records what ReflectionService.addToServer registers, so the real server gets the lazy
  // registrations below and this one build serves every server of the process.
  const recorder = {
    addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
      for (const [name, definition] of Object.entries(service)) {
        const fn = implementation[name] ?? (definition.originalName === undefined ? undefined : implementation[definition.originalName]);
        if (typeof fn !== 'function') continue;
        methods.set(definition.path, {
          definition: definition as grpc.MethodDefinition<unknown, unknown>,
          handler: (fn as grpc.handleBidiStreamingCall<unknown, unknown>).bind(implementation),
        });
      }
    },
  };
  const pkg = protoLoader.loadSync(protos.files, { includeDirs: protos.includeDirs });
  new ReflectionService(pkg).addToServer(recorder);
  built = methods;
  return methods;
}

/**
 * Registers server reflection on `server` for `protos`; the descriptors are built on the first reflection request
 * (once per process, shared by every server: all serve the same protos), so a server start costs nothing for it.
 */
export function addLazyReflection(server: grpc.Server, protos: ReflectionProtos): void {
  for (const path of PATHS) {
    const real = (): ReflectionMethod => {
      const method = realMethods(protos).get(path);
      if (!method) throw new Error(`@grpc/reflection no longer serves ${path}`);
      return method;
    };
    const definition: grpc.MethodDefinition<unknown, unknown> = {
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: (value) => real().definition.requestSerialize(value),
      requestDeserialize: (bytes) => real().definition.requestDeserialize(bytes),
      responseSerialize: (value) => real().definition.responseSerialize(value),
      responseDeserialize: (bytes) => real().definition.responseDeserialize(bytes),
    };
    const handler: grpc.handleBidiStreamingCall<unknown, unknown> = (call) => real().handler(call);
    server.addService({ [METHOD]: definition }, { [METHOD]: handler });
  }
}
