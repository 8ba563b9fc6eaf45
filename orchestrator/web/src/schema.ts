// What /synthesize accepts, read from the server's own OpenAPI schema, so the pickers offer
// exactly the formats and speeds this server supports (a newer server offers more, with no
// change here).

export interface SynthesisChoices {
  formats: string[];
  /** The format the server uses when a request names none (preselected). */
  defaultFormat: string;
  speed: { min: number; max: number; default: number } | null;
}

type Schema = {
  $ref?: string;
  enum?: unknown[];
  anyOf?: Schema[];
  allOf?: Schema[];
  properties?: Record<string, Schema>;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
  type?: string;
};

const FALLBACK: SynthesisChoices = { formats: ["wav"], defaultFormat: "wav", speed: null };

function resolve(doc: { components?: { schemas?: Record<string, Schema> } }, schema: Schema): Schema {
  const name = schema.$ref?.split("/").pop();
  return name && doc.components?.schemas?.[name] ? doc.components.schemas[name] : schema;
}

/** Every alternative of a property (anyOf/allOf flattened, references resolved). */
function variants(doc: Parameters<typeof resolve>[0], schema: Schema): Schema[] {
  const s = resolve(doc, schema);
  const nested = [...(s.anyOf ?? []), ...(s.allOf ?? [])];
  return nested.length ? nested.flatMap((n) => variants(doc, n)) : [s];
}

export async function synthesisChoices(): Promise<SynthesisChoices> {
  let doc: Parameters<typeof resolve>[0] & { paths?: Record<string, unknown> };
  try {
    const response = await fetch("/openapi.json");
    if (!response.ok) return FALLBACK;
    doc = await response.json();
  } catch {
    return FALLBACK;
  }
  const request = doc.components?.schemas?.SynthesizeRequest;
  const props = request?.properties ?? {};
  const formats = props.format
    ? variants(doc, props.format).flatMap((v) => (v.enum ?? []).filter((e): e is string => typeof e === "string"))
    : [];
  let speed: SynthesisChoices["speed"] = null;
  if (props.speed) {
    const numeric = variants(doc, props.speed).find((v) => v.type === "number" || v.type === "integer");
    const min = numeric?.minimum ?? numeric?.exclusiveMinimum;
    const max = numeric?.maximum ?? numeric?.exclusiveMaximum;
    const fallbackDefault = resolve(doc, props.speed).default;
    if (min !== undefined && max !== undefined && max > min) {
      speed = { min, max, default: typeof fallbackDefault === "number" ? fallbackDefault : 1 };
    }
  }
  if (!formats.length) return { ...FALLBACK, speed };
  const stated = props.format ? resolve(doc, props.format).default ?? props.format.default : undefined;
  const defaultFormat = typeof stated === "string" && formats.includes(stated) ? stated : formats[0];
  return { formats, defaultFormat, speed };
}
