/** The image file: schemas, strict codec, admission, and the canonical builder. */
export {
  Image, ImageEndpoint, CodeRef, ArenaPageRef, DataDesc, PinnedCap, PinnedSelector,
  type ImageValue, type ImageEndpointValue, type DataDescValue, type PinnedCapValue,
} from './schema.js';
export { decodeImage, encodeImage, imageContentHash } from './codec.js';
export { validateDataDesc, materialise } from './desc.js';
export { imageCap, checkImage, admitImage, isAdmittedImage, mappingIsPinned, type AdmittedImage, type AdmittedData } from './admit.js';
export { codeMapping } from '../caps/index.js';
export { ImageBuilder, type EndpointSpec } from './builder.js';
