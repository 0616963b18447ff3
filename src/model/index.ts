// The model layer: configuration types, the Model class, tiny configs.
export * from './config_types';
export * from './model';
export * from './tiny';
